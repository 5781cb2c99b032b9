package testredis

import (
	"strings"
)

// Scan lists the keys of this server matching the glob pattern with SCAN
// (never KEYS). On a cluster node it lists that node's keys only.
func (s *Server) Scan(match string) ([]string, error) {
	var keys []string
	cursor := "0"
	for {
		out, err := s.Do("SCAN", cursor, "MATCH", match, "COUNT", "1000")
		if err != nil {
			return nil, err
		}
		// The reply [cursor, [keys…]] arrives flattened: the cursor, then
		// one key per line.
		lines := strings.Split(out, "\n")
		cursor = lines[0]
		for _, k := range lines[1:] {
			if k != "" {
				keys = append(keys, k)
			}
		}
		if cursor == "0" {
			return keys, nil
		}
	}
}
