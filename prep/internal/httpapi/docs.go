package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// openAPIDoc is the OpenAPI 3 document of this API, served at
// /openapi.json; a test keeps its paths and the routes in sync.
//
//go:embed web/openapi.json
var openAPIDoc []byte

// indexPage is the web page at /: one self-contained file.
//
//go:embed web/index.html
var indexPage []byte

//go:embed web/docs.html.tmpl
var docsTemplate string

// pageCSP keeps the pages self-contained: nothing is loaded from elsewhere
// and they talk to this server only.
const pageCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// openAPI implements GET /openapi.json.
func (s *server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDoc)
}

// index implements GET /: the page to try a model in a browser.
func (s *server) index(c *gin.Context) {
	c.Header("Content-Security-Policy", pageCSP)
	c.Data(http.StatusOK, "text/html; charset=utf-8", indexPage)
}

// docs implements GET /docs: the OpenAPI document as an HTML page.
func (s *server) docs(c *gin.Context) {
	page, err := docsPage()
	if err != nil {
		writeError(c, newError(http.StatusInternalServerError, codeInternal, "render the docs page: %v", err))
		return
	}
	c.Header("Content-Security-Policy", pageCSP)
	c.Data(http.StatusOK, "text/html; charset=utf-8", page)
}

// docsPage renders the docs page once.
var docsPage = sync.OnceValues(func() ([]byte, error) {
	doc, err := parseOpenAPI(openAPIDoc)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("docs").Parse(docsTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse the docs template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, doc.view()); err != nil {
		return nil, fmt.Errorf("render the docs page: %w", err)
	}
	return b.Bytes(), nil
})

// openAPI is the part of an OpenAPI 3 document the docs page shows.
type openAPI struct {
	OpenAPI string `json:"openapi"`
	Info    struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	Tags []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Paths      map[string]map[string]*oaOperation `json:"paths"`
	Components struct {
		Parameters    map[string]*oaParameter     `json:"parameters"`
		RequestBodies map[string]*oaRequestBody   `json:"requestBodies"`
		Responses     map[string]*oaResponse      `json:"responses"`
		Schemas       map[string]json.RawMessage  `json:"schemas"`
		Headers       map[string]*json.RawMessage `json:"headers"`
	} `json:"components"`
}

type oaOperation struct {
	OperationID string                 `json:"operationId"`
	Summary     string                 `json:"summary"`
	Description string                 `json:"description"`
	Tags        []string               `json:"tags"`
	Parameters  []*oaParameter         `json:"parameters"`
	RequestBody *oaRequestBody         `json:"requestBody"`
	Responses   map[string]*oaResponse `json:"responses"`
	CodeSamples []struct {
		Lang   string `json:"lang"`
		Label  string `json:"label"`
		Source string `json:"source"`
	} `json:"x-codeSamples"`
}

type oaParameter struct {
	Ref         string          `json:"$ref"`
	Name        string          `json:"name"`
	In          string          `json:"in"`
	Required    bool            `json:"required"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
}

type oaRequestBody struct {
	Ref         string                     `json:"$ref"`
	Description string                     `json:"description"`
	Content     map[string]json.RawMessage `json:"content"`
}

type oaResponse struct {
	Ref         string `json:"$ref"`
	Description string `json:"description"`
}

// httpMethods are the operation keys of an OpenAPI path item, in the order
// the docs page lists them.
var httpMethods = []string{"get", "post", "put", "patch", "delete", "head", "options"}

// parseOpenAPI decodes doc and resolves the references the docs page
// follows; a dangling one is an error.
func parseOpenAPI(doc []byte) (*openAPI, error) {
	var d openAPI
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("decode the OpenAPI document: %w", err)
	}
	for path, item := range d.Paths {
		for method, op := range item {
			if !slices.Contains(httpMethods, method) {
				return nil, fmt.Errorf("%s: %q is not an HTTP method", path, method)
			}
			for i, p := range op.Parameters {
				if p.Ref == "" {
					continue
				}
				r, ok := d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
				if !ok {
					return nil, fmt.Errorf("%s %s: dangling reference %s", method, path, p.Ref)
				}
				op.Parameters[i] = r
			}
			if rb := op.RequestBody; rb != nil && rb.Ref != "" {
				r, ok := d.Components.RequestBodies[strings.TrimPrefix(rb.Ref, "#/components/requestBodies/")]
				if !ok {
					return nil, fmt.Errorf("%s %s: dangling reference %s", method, path, rb.Ref)
				}
				op.RequestBody = r
			}
			for code, resp := range op.Responses {
				if resp.Ref == "" {
					continue
				}
				r, ok := d.Components.Responses[strings.TrimPrefix(resp.Ref, "#/components/responses/")]
				if !ok {
					return nil, fmt.Errorf("%s %s: dangling reference %s", method, path, resp.Ref)
				}
				op.Responses[code] = r
			}
		}
	}
	return &d, nil
}

// docsView is what the docs template renders.
type docsView struct {
	Title, Version, Description string
	Sections                    []docsSection
	Schemas                     []docsSchema
}

type docsSection struct {
	Tag, Description string
	Operations       []docsOperation
}

type docsOperation struct {
	ID, Method, Path, Summary, Description string
	Parameters                             []*oaParameter
	BodyDescription                        string
	BodyTypes                              []string
	Responses                              []docsResponse
	Curl                                   string
}

type docsResponse struct{ Code, Description string }

type docsSchema struct{ Name, JSON string }

// view arranges the document for the template: operations grouped by
// their first tag in the document's tag order, by path within a tag.
func (d *openAPI) view() docsView {
	v := docsView{Title: d.Info.Title, Version: d.Info.Version, Description: d.Info.Description}
	paths := make([]string, 0, len(d.Paths))
	for p := range d.Paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, tag := range d.Tags {
		sec := docsSection{Tag: tag.Name, Description: tag.Description}
		for _, path := range paths {
			for _, method := range httpMethods {
				op := d.Paths[path][method]
				if op == nil || len(op.Tags) == 0 || op.Tags[0] != tag.Name {
					continue
				}
				sec.Operations = append(sec.Operations, op.view(method, path))
			}
		}
		v.Sections = append(v.Sections, sec)
	}
	names := make([]string, 0, len(d.Components.Schemas))
	for n := range d.Components.Schemas {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var b bytes.Buffer
		_ = json.Indent(&b, d.Components.Schemas[n], "", "  ")
		v.Schemas = append(v.Schemas, docsSchema{Name: n, JSON: b.String()})
	}
	return v
}

func (op *oaOperation) view(method, path string) docsOperation {
	o := docsOperation{
		ID: op.OperationID, Method: strings.ToUpper(method), Path: path,
		Summary: op.Summary, Description: op.Description, Parameters: op.Parameters,
	}
	if rb := op.RequestBody; rb != nil {
		o.BodyDescription = rb.Description
		for t := range rb.Content {
			o.BodyTypes = append(o.BodyTypes, t)
		}
		slices.Sort(o.BodyTypes)
	}
	for code, r := range op.Responses {
		o.Responses = append(o.Responses, docsResponse{Code: code, Description: r.Description})
	}
	slices.SortFunc(o.Responses, func(a, b docsResponse) int { return strings.Compare(a.Code, b.Code) })
	for _, cs := range op.CodeSamples {
		if cs.Label == "curl" || cs.Lang == "Shell" {
			o.Curl = cs.Source
			break
		}
	}
	return o
}

// SchemaType is a parameter schema's type for the docs table.
func (p *oaParameter) SchemaType() string {
	var s struct {
		Type   string `json:"type"`
		Format string `json:"format"`
	}
	_ = json.Unmarshal(p.Schema, &s)
	if s.Format != "" {
		return s.Type + " (" + s.Format + ")"
	}
	return s.Type
}
