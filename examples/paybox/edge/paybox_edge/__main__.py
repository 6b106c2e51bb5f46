from paybox_edge.server import main

main()
