"""heatsched: heat-aware, residency-safe placement of pods across digital-boiler sites."""
__version__ = "0.1.0"
