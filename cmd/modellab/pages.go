package main

import (
	"net/http"

	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/web"
)

// pages mounts the HTML pages (package web) on the server's mux.
var pages func(s *server.Server, mux *http.ServeMux) = web.Mount
