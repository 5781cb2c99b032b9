//go:build !nocontract

package store_test

import (
	"github.com/modellab/modellab/service"
	"github.com/modellab/modellab/store"
)

// The service's interface is the contract. The nocontract tag lets the store
// be tested alone while the service package is mid-change.
var _ service.Store = (*store.DB)(nil)
