package modellab

// LTTB downsamples a series sorted by step to n points with
// largest-triangle-three-buckets: the first and the last point are kept,
// the points between are split into n-2 buckets, and each bucket keeps
// the point that forms the largest triangle with the point kept before it
// and the average of the next bucket. Peaks and troughs survive,
// which is what a loss curve is read for. A series of at most n points,
// or n < 2, is returned as it is; otherwise the result is a new slice of
// exactly n points in step order.
func LTTB(s []MetricSample, n int) []MetricSample {
	if n >= len(s) || n < 2 {
		return s
	}
	out := make([]MetricSample, 0, n)
	out = append(out, s[0])
	if n == 2 {
		return append(out, s[len(s)-1])
	}
	// Bucket i (0-based) of the inner points covers [lo(i), lo(i+1)).
	every := float64(len(s)-2) / float64(n-2)
	lo := func(i int) int { return min(int(float64(i)*every)+1, len(s)-1) }
	a := 0 // index of the point kept last
	for i := 0; i < n-2; i++ {
		// The average of the next bucket; for the last bucket it is the
		// last point.
		nlo, nhi := lo(i+1), lo(i+2)
		if i == n-3 {
			nlo, nhi = len(s)-1, len(s)
		}
		var avgX, avgY float64
		for _, p := range s[nlo:nhi] {
			avgX += float64(p.Step)
			avgY += p.Value
		}
		cnt := float64(nhi - nlo)
		avgX, avgY = avgX/cnt, avgY/cnt

		ax, ay := float64(s[a].Step), s[a].Value
		best, bestArea := lo(i), -1.0
		for j := lo(i); j < lo(i+1); j++ {
			// Twice the triangle's area; the factor does not change the choice.
			area := (ax-avgX)*(s[j].Value-ay) - (ax-float64(s[j].Step))*(avgY-ay)
			if area < 0 {
				area = -area
			}
			if area > bestArea {
				best, bestArea = j, area
			}
		}
		out = append(out, s[best])
		a = best
	}
	return append(out, s[len(s)-1])
}
