"""Sub-clients, one per area of the platform."""
