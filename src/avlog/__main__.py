from avlog.cli import main

main()
