package cache_test

import (
	"context"
	"fmt"
	"time"

	"github.com/modellab/modellab/cache"
)

// A memory-only cache: the first Fetch loads, the next one hits, and an
// Invalidate after a write makes the next Fetch load the new value.
func Example() {
	c, err := cache.New(cache.Options{DisableRedis: true})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ctx := context.Background()
	db := "v1"
	load := func(ctx context.Context) ([]byte, error) { return []byte(db), nil }
	opts := cache.FetchOptions{TTL: time.Minute, Group: "models"}

	for i := 0; i < 2; i++ {
		e, res, _ := c.Fetch(ctx, "api:models:global", opts, load)
		fmt.Println(res, string(e.Body()))
	}

	db = "v2" // a write...
	c.Invalidate(ctx, "api:models:global")
	e, res, _ := c.Fetch(ctx, "api:models:global", opts, load)
	fmt.Println(res, string(e.Body()))

	s := c.Stats()
	fmt.Println(s.Mode, s.Redis, s.Groups["models"].Loads)
	// Output:
	// MISS v1
	// HIT v1
	// MISS v2
	// memory disabled 2
}
