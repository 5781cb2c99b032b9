package server

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the Prometheus collectors of one server. The names are part
// of the contract (SPEC.md, Operations).
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	dbQueries prometheus.Counter
	inFlight  prometheus.Gauge
	shed      *prometheus.CounterVec

	// Per-(route, code) counters are resolved once and reused: the
	// label lookup would otherwise cost a hash and allocation per request.
	mu       sync.RWMutex
	counters map[routeCode]prometheus.Counter
	hists    map[string]prometheus.Observer
}

type routeCode struct {
	route string
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
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "modellab_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		dbQueries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "modellab_db_queries_total",
			Help: "Statements sent to the database.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "modellab_http_in_flight_requests",
			Help: "Requests being served.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modellab_load_shed_total",
			Help: "Requests answered 503 because a concurrency bound was reached.",
		}, []string{"reason"}),
		counters: map[routeCode]prometheus.Counter{},
		hists:    map[string]prometheus.Observer{},
	}
	reg.MustRegister(m.requests, m.duration, m.dbQueries, m.inFlight, m.shed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds more collectors (cache, database pool) to the registry.
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// DBQuery counts one statement; it is the store's OnQuery hook.
func (m *Metrics) DBQuery() { m.dbQueries.Inc() }

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
	m.mu.RLock()
	c, ok := m.counters[k]
	h, hok := m.hists[route]
	m.mu.RUnlock()
	if !ok || !hok {
		m.mu.Lock()
		if c, ok = m.counters[k]; !ok {
			c = m.requests.WithLabelValues(route, strconv.Itoa(code))
			m.counters[k] = c
		}
		if h, hok = m.hists[route]; !hok {
			h = m.duration.WithLabelValues(route)
			m.hists[route] = h
		}
		m.mu.Unlock()
	}
	c.Inc()
	h.Observe(seconds)
}
