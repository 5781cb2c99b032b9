package main

import (
	"net/http"

	"github.com/modellab/modellab/server"
)

// pages mounts the HTML pages on the server's mux; nil until the web
// package is wired in.
var pages func(s *server.Server, mux *http.ServeMux)
