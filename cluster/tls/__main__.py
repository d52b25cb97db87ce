from cluster.tls.front import main

raise SystemExit(main())
