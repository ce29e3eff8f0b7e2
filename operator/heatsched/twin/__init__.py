"""Digital twin of digital-boiler sites: tank physics, demand profiles, a Prometheus exporter and a benchmark.

Why it exists: the scheduler decides where pods run, and so which building gets hot water from servers
instead of gas. Real tanks cannot be heated on demand for a demo, an end-to-end test or a policy comparison,
so this package simulates them with the same site manifests (examples/*.yaml) the operator reads:

- `tank`      energy balance of one hot-water tank (pure, no I/O);
- `draw`      demand profiles (hourly kW from ThermalDemand manifests, seeded day-to-day variation);
- `sites`     manifests -> site configurations (the one place that knows the YAML field names);
- `exporter`  an aiohttp server exposing the tanks as Prometheus metrics, with a small control API;
- `loadsource` where the exporter gets IT power per site (static, or pods on nodes from Kubernetes);
- `trace`, `policies`, `simulate`, `plots`  the offline policy benchmark (`heatsched simulate`).
"""
