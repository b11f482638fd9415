from fakedet.cli import main

main()
