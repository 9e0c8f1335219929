"""cnibench: which Kubernetes CNI, in which datapath mode, is fastest on your hardware.

The layout and the layer order are in docs/architecture.md; the Pulumi program is
:mod:`cnibench.program`, the command line :mod:`cnibench.cli`.
"""

__version__ = "0.1.0"
