"""HTTP controllers: thin — parse, call one service, return a struct."""
