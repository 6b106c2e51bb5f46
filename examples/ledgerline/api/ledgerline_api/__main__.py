from ledgerline_api.server import main

main()
