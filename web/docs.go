package web

import (
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"
)

// The /docs page is rendered from the embedded OpenAPI document, once at
// start: the reference people read is the one the tests validate responses
// against, so the two cannot disagree.

type apiDoc struct {
	Title, Version, Description string
	Groups                      []docGroup
	Schemas                     []docSchema
}

type docGroup struct {
	Name, Description, Anchor string
	Ops                       []docOp
}

type docOp struct {
	Method, Path, Summary, Description, Anchor, Auth string
	Params                                           []docParam
	Body                                             *docBody
	Responses                                        []docResp
}

type docParam struct {
	Name, In, Description string
	Type                  template.HTML
	Required              bool
}

type docBody struct {
	Type     template.HTML
	Example  string
	Required bool
}

type docResp struct {
	Code, Description string
	Type              template.HTML
	Headers           []string
}

type docSchema struct {
	Name, Anchor, Description string
	Type                      template.HTML // when it is not an object
	Props                     []docProp
}

type docProp struct {
	Name, Description string
	Type              template.HTML
	Required          bool
}

// The subset of OpenAPI 3.0 the page shows.
type oaDoc struct {
	Info struct {
		Title, Version, Description string
	} `json:"info"`
	Tags []struct {
		Name, Description string
	} `json:"tags"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas    map[string]*oaSchema  `json:"schemas"`
		Parameters map[string]oaParam    `json:"parameters"`
		Responses  map[string]oaResponse `json:"responses"`
		Headers    map[string]oaHeader   `json:"headers"`
	} `json:"components"`
}

type oaOp struct {
	Tags        []string  `json:"tags"`
	Summary     string    `json:"summary"`
	Description string    `json:"description"`
	Parameters  []oaParam `json:"parameters"`
	RequestBody *struct {
		Required bool               `json:"required"`
		Content  map[string]oaMedia `json:"content"`
	} `json:"requestBody"`
	Responses map[string]oaResponse  `json:"responses"`
	Security  *[]map[string][]string `json:"security"`
	Admin     bool                   `json:"x-admin"`
}

type oaParam struct {
	Ref         string    `json:"$ref"`
	Name        string    `json:"name"`
	In          string    `json:"in"`
	Description string    `json:"description"`
	Required    bool      `json:"required"`
	Schema      *oaSchema `json:"schema"`
}

type oaHeader struct {
	Ref         string `json:"$ref"`
	Description string `json:"description"`
}

type oaResponse struct {
	Ref         string              `json:"$ref"`
	Description string              `json:"description"`
	Headers     map[string]oaHeader `json:"headers"`
	Content     map[string]oaMedia  `json:"content"`
}

type oaMedia struct {
	Schema  *oaSchema       `json:"schema"`
	Example json.RawMessage `json:"example"`
}

type oaSchema struct {
	Ref                  string               `json:"$ref"`
	Type                 string               `json:"type"`
	Format               string               `json:"format"`
	Description          string               `json:"description"`
	Nullable             bool                 `json:"nullable"`
	Enum                 []any                `json:"enum"`
	Items                *oaSchema            `json:"items"`
	Properties           map[string]*oaSchema `json:"properties"`
	Required             []string             `json:"required"`
	AllOf                []*oaSchema          `json:"allOf"`
	OneOf                []*oaSchema          `json:"oneOf"`
	AdditionalProperties json.RawMessage      `json:"additionalProperties"`
}

var methodOrder = []string{"get", "post", "put", "patch", "delete"}

func parseAPIDoc(spec []byte) (*apiDoc, error) {
	var d oaDoc
	if err := json.Unmarshal(spec, &d); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	out := &apiDoc{Title: d.Info.Title, Version: d.Info.Version, Description: d.Info.Description}
	for _, t := range d.Tags {
		out.Groups = append(out.Groups, docGroup{Name: t.Name, Description: t.Description, Anchor: "tag-" + anchor(t.Name)})
	}
	paths := slices.Sorted(maps.Keys(d.Paths))
	for _, p := range paths {
		ops, err := d.pathOps(p)
		if err != nil {
			return nil, err
		}
		for _, op := range ops {
			out.addOp(op.tag, op.op)
		}
	}
	out.Schemas = d.schemas()
	return out, nil
}

// taggedOp is one operation and the group it is listed under.
type taggedOp struct {
	tag string
	op  docOp
}

// pathOps returns the operations of path p in methodOrder.
func (d *oaDoc) pathOps(p string) ([]taggedOp, error) {
	item := d.Paths[p]
	var shared []oaParam
	if raw, ok := item["parameters"]; ok {
		if err := json.Unmarshal(raw, &shared); err != nil {
			return nil, fmt.Errorf("openapi.json: %s parameters: %w", p, err)
		}
	}
	var out []taggedOp
	for _, m := range methodOrder {
		raw, ok := item[m]
		if !ok {
			continue
		}
		var op oaOp
		if err := json.Unmarshal(raw, &op); err != nil {
			return nil, fmt.Errorf("openapi.json: %s %s: %w", m, p, err)
		}
		tag := "Other"
		if len(op.Tags) > 0 {
			tag = op.Tags[0]
		}
		out = append(out, taggedOp{tag: tag, op: d.docOpOf(m, p, &op, shared)})
	}
	return out, nil
}

// docOpOf is the page's view of one operation.
func (d *oaDoc) docOpOf(method, path string, op *oaOp, shared []oaParam) docOp {
	dop := docOp{Method: strings.ToUpper(method), Path: path, Summary: op.Summary, Description: op.Description,
		Anchor: "op-" + method + anchor(path), Auth: authOf(op)}
	for _, prm := range append(slices.Clone(shared), op.Parameters...) {
		if prm.Ref != "" {
			prm = d.Components.Parameters[refName(prm.Ref)]
		}
		dop.Params = append(dop.Params, docParam{Name: prm.Name, In: prm.In, Description: prm.Description,
			Required: prm.Required, Type: typeOf(prm.Schema)})
	}
	if rb := op.RequestBody; rb != nil {
		if mt, ok := rb.Content["application/json"]; ok {
			dop.Body = &docBody{Type: typeOf(mt.Schema), Required: rb.Required, Example: pretty(mt.Example)}
		}
	}
	for _, c := range slices.Sorted(maps.Keys(op.Responses)) {
		dop.Responses = append(dop.Responses, d.docRespOf(c, op.Responses[c]))
	}
	return dop
}

// authOf says who may call op, from its security requirements.
func authOf(op *oaOp) string {
	switch {
	case op.Admin:
		return "admin token"
	case op.Security != nil && len(*op.Security) == 0:
		return "public"
	case op.Security != nil && slices.ContainsFunc(*op.Security, func(s map[string][]string) bool { return len(s) == 0 }):
		return "token optional"
	}
	return "token required"
}

// docRespOf is the page's view of one response, references resolved.
func (d *oaDoc) docRespOf(code string, r oaResponse) docResp {
	if r.Ref != "" {
		r = d.Components.Responses[refName(r.Ref)]
	}
	dr := docResp{Code: code, Description: r.Description}
	for _, ct := range []string{"application/json", "text/html", "text/plain"} {
		if mt, ok := r.Content[ct]; ok {
			dr.Type = typeOf(mt.Schema)
			if ct != "application/json" {
				dr.Type = template.HTML(ct)
			}
			break
		}
	}
	dr.Headers = slices.Sorted(maps.Keys(r.Headers))
	return dr
}

// addOp lists op under its group, made on first use after the declared
// tags.
func (out *apiDoc) addOp(tag string, op docOp) {
	i := slices.IndexFunc(out.Groups, func(g docGroup) bool { return g.Name == tag })
	if i < 0 {
		out.Groups = append(out.Groups, docGroup{Name: tag, Anchor: "tag-" + anchor(tag)})
		i = len(out.Groups) - 1
	}
	out.Groups[i].Ops = append(out.Groups[i].Ops, op)
}

// schemas lists the components' schemas by name.
func (d *oaDoc) schemas() []docSchema {
	var out []docSchema
	for _, n := range slices.Sorted(maps.Keys(d.Components.Schemas)) {
		s := d.Components.Schemas[n]
		ds := docSchema{Name: n, Anchor: "schema-" + anchor(n), Description: s.Description}
		ds.Props = flattenProps(s, d.Components.Schemas)
		if len(ds.Props) == 0 {
			ds.Type = typeOf(s)
		}
		out = append(out, ds)
	}
	return out
}

// flattenProps lists an object's properties, allOf included.
func flattenProps(s *oaSchema, all map[string]*oaSchema) []docProp {
	if s == nil {
		return nil
	}
	var out []docProp
	for _, part := range s.AllOf {
		if part.Ref != "" {
			part = all[refName(part.Ref)]
		}
		out = append(out, flattenProps(part, all)...)
	}
	keys := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := s.Properties[k]
		out = append(out, docProp{Name: k, Description: p.Description, Type: typeOf(p), Required: slices.Contains(s.Required, k)})
	}
	return out
}

func refName(ref string) string { return ref[strings.LastIndexByte(ref, '/')+1:] }

func anchor(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// typeOf renders a schema's type as a short phrase with links to named
// schemas ("array of <Model>", "string (date-time) or null").
func typeOf(s *oaSchema) template.HTML {
	return template.HTML(typeText(s))
}

func typeText(s *oaSchema) string {
	if s == nil {
		return ""
	}
	var t string
	switch {
	case s.Ref != "":
		n := refName(s.Ref)
		t = `<a href="#schema-` + anchor(n) + `">` + esc(n) + `</a>`
	case len(s.AllOf) == 1:
		t = typeText(s.AllOf[0])
	case len(s.OneOf) > 0:
		parts := make([]string, len(s.OneOf))
		for i, o := range s.OneOf {
			parts[i] = typeText(o)
		}
		t = strings.Join(parts, " or ")
	case len(s.Enum) > 0:
		parts := make([]string, len(s.Enum))
		for i, e := range s.Enum {
			b, _ := json.Marshal(e)
			parts[i] = "<code>" + esc(string(b)) + "</code>"
		}
		t = strings.Join(parts, " | ")
	case s.Type == "array":
		t = "array of " + typeText(s.Items)
	case s.Type == "object" && len(s.Properties) == 0 && len(s.AdditionalProperties) > 0 && string(s.AdditionalProperties) != "true" && string(s.AdditionalProperties) != "false":
		var ap oaSchema
		if json.Unmarshal(s.AdditionalProperties, &ap) == nil {
			t = "map of " + typeText(&ap)
		} else {
			t = "object"
		}
	default:
		t = esc(s.Type)
		if s.Format != "" {
			t += " (" + esc(s.Format) + ")"
		}
	}
	if s.Nullable {
		t += " or null"
	}
	return t
}

func pretty(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return string(raw)
	}
	return string(b)
}
