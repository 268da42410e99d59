"""`python -m edgeport.edge.arm64`: build (or find) the cached arm64 rootfs; what `./run setup arm64` runs."""

from .rootfs import main

raise SystemExit(main())
