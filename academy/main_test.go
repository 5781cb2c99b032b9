package academy_test

import "flag"

var update = flag.Bool("update", false, "rewrite web/static/highlight.css")
