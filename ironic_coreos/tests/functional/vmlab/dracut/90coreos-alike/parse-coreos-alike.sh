#!/bin/sh
# dracut cmdline hook: a live boot has no root= (the root is built by
# coreos-alike-live-root.service); tell dracut it is handled.
if /usr/bin/is-live-image; then
    root="coreos-alike-live"
    rootok=1
fi
