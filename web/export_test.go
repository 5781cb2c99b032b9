package web

// FragmentRenders returns how many shared page fragments (lessons) p has
// rendered, for the tests of the composed pages.
func FragmentRenders(p *Pages) int64 { return p.a.frags.renders.Load() }
