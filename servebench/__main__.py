from servebench.cli import main

main()
