from edgeport.cli import main

raise SystemExit(main())
