"""Local lab: node/pod network namespaces, datapath set-up, measurement (``cnibench lab``)."""
