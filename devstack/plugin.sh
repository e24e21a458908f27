#!/bin/bash
# devstack plugin of ironic-coreos: installs the package next to Ironic and
# enables the coreos deploy interface and hardware types.

IRONIC_COREOS_XTRACE=$(set +o | grep xtrace)
set -o xtrace

function _append_to_list {
    # Print the comma-separated list $1 with the items of $2 added once.
    local current=$1
    local item
    local IFS=,
    for item in $2; do
        if [[ ",$current," != *",$item,"* ]]; then
            current=${current:+$current,}$item
        fi
    done
    echo "$current"
}

function install_ironic_coreos {
    setup_develop "$IRONIC_COREOS_DIR"
}

function configure_ironic_coreos {
    local deploy
    local hw_types
    deploy=$(iniget "$IRONIC_CONF_FILE" DEFAULT enabled_deploy_interfaces)
    deploy=$(_append_to_list "$deploy" "$IRONIC_COREOS_DEPLOY_INTERFACES")
    iniset "$IRONIC_CONF_FILE" DEFAULT enabled_deploy_interfaces "$deploy"

    hw_types=$(iniget "$IRONIC_CONF_FILE" DEFAULT enabled_hardware_types)
    hw_types=$(_append_to_list "$hw_types" "$IRONIC_COREOS_HARDWARE_TYPES")
    iniset "$IRONIC_CONF_FILE" DEFAULT enabled_hardware_types "$hw_types"

    if [[ -n "$IRONIC_COREOS_MAX_IGNITION_VERSION" ]]; then
        iniset "$IRONIC_CONF_FILE" coreos max_ignition_version \
            "$IRONIC_COREOS_MAX_IGNITION_VERSION"
    fi
}

if [[ "$1" == "stack" ]]; then
    case "$2" in
        install)
            echo_summary "Installing ironic-coreos"
            install_ironic_coreos
            ;;
        post-config)
            echo_summary "Configuring ironic-coreos"
            configure_ironic_coreos
            ;;
    esac
fi

if [[ "$1" == "unstack" ]]; then
    # Nothing to stop: the interfaces run inside ironic-conductor.
    :
fi

if [[ "$1" == "clean" ]]; then
    :
fi

$IRONIC_COREOS_XTRACE
