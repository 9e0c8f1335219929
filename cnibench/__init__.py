"""cnibench: which Kubernetes CNI, in which datapath mode, is fastest on your hardware.

The package holds the pure logic (variant catalog, config validation, parsers, statistics,
reports, the local lab, the CLI). Pulumi resources live in ``components/``.
"""

__version__ = "0.1.0"
