from fxq.cli import main

raise SystemExit(main())
