from apps.sandbox.cli import main

main()
