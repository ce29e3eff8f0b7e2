"""The heatsched operator process: kopf handlers, the telemetry refresher, the scheduler extender and the
admission webhook, all on one event loop sharing one in-memory Store."""
