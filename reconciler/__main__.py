from reconciler.entry import main

raise SystemExit(main())
