from paybox.server import main

main()
