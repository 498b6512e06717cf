from stream_wfm.cli.main import main

raise SystemExit(main())
