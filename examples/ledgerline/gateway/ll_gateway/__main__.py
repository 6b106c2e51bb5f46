from ll_gateway.gateway import main

main()
