from debrepo.cli import main

main()
