//go:build !race

package cache

import "time"

const coherenceBound = 50 * time.Millisecond
