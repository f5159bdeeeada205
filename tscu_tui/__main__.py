from tscu_tui.cli import main

raise SystemExit(main())
