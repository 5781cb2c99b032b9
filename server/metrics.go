package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modellab/modellab/cache"
	"github.com/modellab/modellab/service"
)

// Metrics holds the Prometheus collectors of one server. The names are part
// of the API contract: dashboards and alerts rely on them.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	dbQueries prometheus.Counter
	dbSeconds prometheus.Histogram
	dbWaits   prometheus.Counter
	shed      *prometheus.CounterVec

	// inFlight is read by a GaugeFunc at scrape time: setting a gauge on
	// every request and response would be two more contended atomic
	// writes per request.
	inFlight atomic.Int64

	// Per-(route, code) observers are resolved once and published as an
	// immutable map (copy on write): a hit reads it with one atomic load,
	// where an RWMutex would make every request write the lock's cache
	// line.
	mu        sync.Mutex
	observers atomic.Pointer[map[routeCode]observers]
}

type observers struct {
	count prometheus.Counter
	hist  prometheus.Observer
}

type routeCode struct {
	route string // the mux pattern, "GET /api/models"
	code  int
}

// NewMetrics creates the collectors in a fresh registry, with the Go runtime
// and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modellab_http_requests_total",
			Help: "HTTP requests by method, route (the path pattern) and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "modellab_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route (the path pattern).",
			Buckets: latencyBuckets,
		}, []string{"method", "route"}),
		dbQueries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "modellab_db_queries_total",
			Help: "Statements sent to the database.",
		}),
		dbSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "modellab_db_query_duration_seconds",
			Help:    "Duration of the statements sent to the database (a query until its rows are closed).",
			Buckets: latencyBuckets,
		}),
		dbWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "modellab_db_slot_waits_total",
			Help: "Database-bound operations that had to wait for one of the MAX_DB_IN_FLIGHT slots.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modellab_load_shed_total",
			Help: "Requests shed because a concurrency bound was reached: 503 for in_flight and db (every slot taken), 429 for user (the caller's share of the database slots taken).",
		}, []string{"reason"}),
	}
	// Every reason exists from the start, so that rates and alerts over
	// them see a zero rather than no series.
	m.shed.WithLabelValues("db")
	m.shed.WithLabelValues("in_flight")
	m.shed.WithLabelValues("user")
	empty := map[routeCode]observers{}
	m.observers.Store(&empty)
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "modellab_http_in_flight_requests",
		Help: "Requests being served.",
	}, func() float64 { return float64(m.inFlight.Load()) })
	reg.MustRegister(m.requests, m.duration, m.dbQueries, m.dbSeconds, m.dbWaits, inFlight, m.shed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds more collectors (cache, database pool) to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// composedBytes exports the bytes the service keeps of composed answers
// (bodies and gzip forms of recent answers), beside the cache's own tier.
func composedBytes(svc *service.Service) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "modellab_cache_composed_bytes",
		Help: "Bytes held by recent composed answers (bodies and gzip forms), apart from the cache's tiers.",
	}, func() float64 { return float64(svc.ComposedBytes()) })
}

// Shed counts one request shed for reason ("db", "in_flight", "user"); it
// is the service's OnShed hook.
func (m *Metrics) Shed(reason string) { m.shed.WithLabelValues(reason).Inc() }

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// DBQuery counts one statement and its duration; it is the store's OnQuery
// hook.
func (m *Metrics) DBQuery(d time.Duration) {
	m.dbQueries.Inc()
	m.dbSeconds.Observe(d.Seconds())
}

// DBSlotWait counts one database-bound operation that waited for a slot.
func (m *Metrics) DBSlotWait() { m.dbWaits.Inc() }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gather returns the current value of the counter or gauge with the given
// name and labels (the sum over matching series); tests use it.
func (m *Metrics) Gather(name string, labels map[string]string) float64 {
	mfs, err := m.reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range mt.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				sum += mt.Counter.GetValue()
			case mt.Gauge != nil:
				sum += mt.Gauge.GetValue()
			case mt.Histogram != nil:
				sum += float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func (m *Metrics) observe(route string, code int, seconds float64) {
	k := routeCode{route, code}
	o, ok := (*m.observers.Load())[k]
	if !ok {
		o = m.resolve(k)
	}
	o.count.Inc()
	o.hist.Observe(seconds)
}

// resolve adds k's observers to the published map. Routes are patterns and
// codes a small set, so the map stays small and copies are rare.
func (m *Metrics) resolve(k routeCode) observers {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.observers.Load()
	if o, ok := cur[k]; ok {
		return o
	}
	method, route := splitPattern(k.route)
	o := observers{
		count: m.requests.WithLabelValues(method, route, strconv.Itoa(k.code)),
		hist:  m.duration.WithLabelValues(method, route),
	}
	next := make(map[routeCode]observers, len(cur)+1)
	for kk, v := range cur {
		next[kk] = v
	}
	next[k] = o
	m.observers.Store(&next)
	return o
}

// splitPattern splits a mux pattern "GET /api/models" into its method and
// path; a pattern without a method (and the pseudo-routes "overload" and
// "unmatched") gets method "ANY". The method comes from the pattern, never
// from the request, so that a client cannot mint label values.
func splitPattern(pattern string) (method, route string) {
	if m, r, ok := strings.Cut(pattern, " "); ok && !strings.HasPrefix(m, "/") {
		return m, r
	}
	return "ANY", pattern
}

// cacheCollector exports the cache's counters at scrape time, so the hot
// path pays nothing for them beyond the cache's own atomic adds.
type cacheCollector struct {
	c                      *cache.Cache
	groups                 []string
	requests, loads, tiers *prometheus.Desc
	loadErrors             *prometheus.Desc
	redisUp, stale, local  *prometheus.Desc
}

func newCacheCollector(c *cache.Cache, groups []string) *cacheCollector {
	return &cacheCollector{
		c: c, groups: groups,
		requests: prometheus.NewDesc("modellab_cache_requests_total",
			"Cached-endpoint requests by endpoint and result (hit, miss, stale, bypass).", []string{"endpoint", "result"}, nil),
		loads: prometheus.NewDesc("modellab_cache_loads_total",
			"Loader runs, i.e. trips to the database to fill the cache.", []string{"endpoint"}, nil),
		loadErrors: prometheus.NewDesc("modellab_cache_load_errors_total",
			"Loader runs that failed (the database answered an error or not at all).", []string{"endpoint"}, nil),
		tiers: prometheus.NewDesc("modellab_cache_tier_lookups_total",
			"Lookups per cache tier (local, redis) and result (hit, miss, error).", []string{"tier", "result"}, nil),
		redisUp: prometheus.NewDesc("modellab_redis_up",
			"1 when the Redis tier is in use, 0 when it is down or disabled.", nil, nil),
		stale: prometheus.NewDesc("modellab_cache_stale_serves_total",
			"Entries served past their TTL (stale-while-revalidate, stale-if-error).", nil, nil),
		local: prometheus.NewDesc("modellab_cache_local_bytes",
			"Bytes held by the in-process tier.", nil, nil),
	}
}

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cc.requests, cc.loads, cc.loadErrors, cc.tiers, cc.redisUp, cc.stale, cc.local} {
		ch <- d
	}
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := cc.c.Stats()
	for _, endpoint := range cc.groups {
		g := st.Groups[endpoint]
		for _, r := range []struct {
			name string
			v    uint64
		}{{"hit", g.Hit}, {"miss", g.Miss}, {"stale", g.Stale}, {"bypass", g.Bypass}} {
			ch <- prometheus.MustNewConstMetric(cc.requests, prometheus.CounterValue, float64(r.v), endpoint, r.name)
		}
		// Loads of an answer's parts are the endpoint's loads (and errors).
		part := st.Groups[service.PartGroup(endpoint)]
		ch <- prometheus.MustNewConstMetric(cc.loads, prometheus.CounterValue, float64(g.Loads+part.Loads), endpoint)
		ch <- prometheus.MustNewConstMetric(cc.loadErrors, prometheus.CounterValue, float64(g.LoadErrors+part.LoadErrors), endpoint)
	}
	for _, t := range []struct {
		tier string
		s    cache.TierStats
	}{{"local", st.Tiers.Local}, {"redis", st.Tiers.Redis}} {
		ch <- prometheus.MustNewConstMetric(cc.tiers, prometheus.CounterValue, float64(t.s.Hits), t.tier, "hit")
		ch <- prometheus.MustNewConstMetric(cc.tiers, prometheus.CounterValue, float64(t.s.Misses), t.tier, "miss")
		ch <- prometheus.MustNewConstMetric(cc.tiers, prometheus.CounterValue, float64(t.s.Errors), t.tier, "error")
	}
	up := 0.0
	if st.Redis == "up" {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(cc.redisUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(cc.stale, prometheus.CounterValue, float64(st.StaleServes))
	ch <- prometheus.MustNewConstMetric(cc.local, prometheus.GaugeValue, float64(st.LocalBytes))
}
