"""Running the gateway: its configuration, admin changes, wrapper supervision, child processes."""
