from debrepo.entry import main

main()
