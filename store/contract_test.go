//go:build !nocontract

package store_test

import (
	"github.com/modellab/modellab/server"
	"github.com/modellab/modellab/store"
)

// The server's interface is the contract. The nocontract tag lets the store
// be tested alone while the server package is mid-change.
var _ server.Store = (*store.DB)(nil)
