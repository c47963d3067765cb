from proofmint.cli import main

main()
