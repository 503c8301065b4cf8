package k8stest

import (
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// setting is one environment variable a service reads, as found in its
// source: the config.Env method that reads it and the default passed to it.
type setting struct {
	Name   string
	Method string         // String, Addr, SecretList, ...
	Def    constant.Value // nil when the method takes none or it is not a constant
	// Allowed are the values OneOf accepts.
	Allowed []string
	// Min and Max bound an IntRange or DurationRange read (recorded as
	// Int or Duration); nil otherwise.
	Min, Max constant.Value
	Pos      string // file:line of the read
}

// Required reports whether start-up fails without the variable.
func (s setting) Required() bool { return s.Method == "Required" || s.Method == "RequiredSecret" }

// Secret reports whether the value is a secret (never shown, never logged).
func (s setting) Secret() bool {
	switch s.Method {
	case "Secret", "RequiredSecret", "SecretList", "SecretURL", "postgres":
		return true
	}
	return false
}

// DefString is the default as a string, "" if there is none.
func (s setting) DefString() string {
	if s.Def == nil || s.Def.Kind() != constant.String {
		return ""
	}
	return constant.StringVal(s.Def)
}

// envMethods are the config.Env methods that read a variable, with whether
// their second argument is the default.
var envMethods = map[string]bool{
	"String": true, "Int": true, "Duration": true, "Bool": true, "OneOf": true,
	"IntRange": true, "DurationRange": true, "PostgresURL": true,
	"List": true, "Addr": true, "URL": true, "URLList": true, "SecretURL": true,
	// platform/config's own reader of DATABASE_URL: a postgres:// URL or a
	// keyword=value string, secret either way.
	"postgres": true,
	"Required": false, "Secret": false, "RequiredSecret": false, "SecretList": false,
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
var otelName = regexp.MustCompile(`^OTEL_[A-Z0-9_]+$`)

// reads is what a program reads from its environment.
type reads struct {
	Settings map[string]setting
	// OTEL are the OTEL_* names the program's own code looks up (the
	// OpenTelemetry SDK reads the standard ones itself).
	OTEL map[string]bool
}

// goPackage is one parsed package of the repository.
type goPackage struct {
	path   string
	files  []*ast.File
	consts map[string]constDecl
	funcs  map[string][]*ast.FuncDecl // by name; methods of any receiver share a name
	fileOf map[*ast.FuncDecl]*ast.File
}

type constDecl struct {
	expr ast.Expr
	file *ast.File
}

// sourceTree parses the Go packages of the repository on demand.
type sourceTree struct {
	fsys    fs.FS
	fset    *token.FileSet
	modules map[string]string // module path -> directory
	pkgs    map[string]*goPackage
}

func newSourceTree(fsys fs.FS) (*sourceTree, error) {
	t := &sourceTree{fsys: fsys, fset: token.NewFileSet(), modules: map[string]string{}, pkgs: map[string]*goPackage{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return fs.SkipDir
		}
		if d.IsDir() || d.Name() != "go.mod" {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindSubmatch(b)
		if m == nil {
			return fmt.Errorf("%s: no module line", p)
		}
		t.modules[string(m[1])] = path.Dir(p)
		return nil
	})
	return t, err
}

// dirOf maps an import path to its directory, if it is in the repository.
func (t *sourceTree) dirOf(importPath string) (string, bool) {
	best := ""
	for mod := range t.modules {
		if (importPath == mod || strings.HasPrefix(importPath, mod+"/")) && len(mod) > len(best) {
			best = mod
		}
	}
	if best == "" {
		return "", false
	}
	return path.Join(t.modules[best], strings.TrimPrefix(importPath, best)), true
}

// importPathOf is the inverse of dirOf.
func (t *sourceTree) importPathOf(dir string) (string, bool) {
	best, bestDir := "", ""
	for mod, d := range t.modules {
		if (dir == d || strings.HasPrefix(dir, d+"/") || d == ".") && len(d) >= len(bestDir) {
			best, bestDir = mod, d
		}
	}
	if best == "" {
		return "", false
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(dir, bestDir), "/")
	if rel == "" {
		return best, true
	}
	return best + "/" + rel, true
}

func (t *sourceTree) pkg(importPath string) (*goPackage, error) {
	if p, ok := t.pkgs[importPath]; ok {
		return p, nil
	}
	dir, ok := t.dirOf(importPath)
	if !ok {
		return nil, fmt.Errorf("%s is not in the repository", importPath)
	}
	entries, err := fs.ReadDir(t.fsys, dir)
	if err != nil {
		return nil, err
	}
	p := &goPackage{path: importPath, consts: map[string]constDecl{}, funcs: map[string][]*ast.FuncDecl{}, fileOf: map[*ast.FuncDecl]*ast.File{}}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := fs.ReadFile(t.fsys, path.Join(dir, n))
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(t.fset, path.Join(dir, n), src, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		p.files = append(p.files, f)
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				p.funcs[d.Name.Name] = append(p.funcs[d.Name.Name], d)
				p.fileOf[d] = f
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, s := range d.Specs {
					vs := s.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i < len(vs.Values) {
							p.consts[name.Name] = constDecl{vs.Values[i], f}
						}
					}
				}
			}
		}
	}
	if len(p.files) == 0 {
		return nil, fmt.Errorf("%s: no Go files", dir)
	}
	t.pkgs[importPath] = p
	return p, nil
}

// imports maps the names a file uses for its imports to import paths. The
// name of a repository package is read from its source; others are guessed
// from the path, which only matters for following calls, and calls into
// other modules are not followed.
func (t *sourceTree) imports(f *ast.File) map[string]string {
	m := map[string]string{}
	for _, s := range f.Imports {
		p, _ := strconv.Unquote(s.Path.Value)
		name := path.Base(p)
		if strings.HasPrefix(name, "v") && len(name) > 1 && strings.Trim(name[1:], "0123456789") == "" {
			name = path.Base(path.Dir(p)) // .../pgx/v5 is pgx
		}
		if _, local := t.dirOf(p); local {
			if q, err := t.pkg(p); err == nil {
				name = q.files[0].Name.Name
			}
		}
		if s.Name != nil {
			name = s.Name.Name
		}
		m[name] = p
	}
	return m
}

// programReads returns what the program whose main package is in dir
// reads from its environment: every config.Env read in the functions
// reachable from main, following calls into the repository's own packages.
// Calls are followed by name (a method call x.M follows every function or
// method M of the caller's package and of the repository packages its file
// imports), which may include more than a run could reach, rarely less.
func (t *sourceTree) programReads(dir string) (reads, error) {
	r := reads{Settings: map[string]setting{}, OTEL: map[string]bool{}}
	ip, ok := t.importPathOf(dir)
	if !ok {
		return r, fmt.Errorf("%s is in no module", dir)
	}
	type fn struct {
		pkg  string
		name string
	}
	seen := map[fn]bool{}
	queue := []fn{{ip, "main"}}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if seen[cur] {
			continue
		}
		seen[cur] = true
		p, err := t.pkg(cur.pkg)
		if err != nil {
			return r, err
		}
		if cur.name == "main" && len(p.funcs["main"]) == 0 {
			return r, fmt.Errorf("%s: no func main", dir)
		}
		for _, decl := range p.funcs[cur.name] {
			if decl.Body == nil {
				continue
			}
			f := p.fileOf[decl]
			imp := t.imports(f)
			ast.Inspect(decl.Body, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && otelName.MatchString(s) {
						r.OTEL[s] = true
					}
				}
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				// A function of this package passed as a value (as main
				// passes run to command.Main) is called from there.
				for _, arg := range call.Args {
					if id, ok := arg.(*ast.Ident); ok && len(p.funcs[id.Name]) > 0 {
						queue = append(queue, fn{cur.pkg, id.Name})
					}
				}
				switch fun := call.Fun.(type) {
				case *ast.Ident:
					queue = append(queue, fn{cur.pkg, fun.Name})
				case *ast.SelectorExpr:
					if x, ok := fun.X.(*ast.Ident); ok {
						if target, ok := imp[x.Name]; ok {
							if _, local := t.dirOf(target); local {
								queue = append(queue, fn{target, fun.Sel.Name})
							}
							return true
						}
					}
					// A method call: its receiver's type is unknown here, so
					// follow methods of that name in this package and in the
					// repository packages this file imports.
					queue = append(queue, fn{cur.pkg, fun.Sel.Name})
					for _, target := range imp {
						if _, local := t.dirOf(target); local {
							queue = append(queue, fn{target, fun.Sel.Name})
						}
					}
					if s, ok := t.envRead(p, f, fun.Sel.Name, call); ok {
						if _, dup := r.Settings[s.Name]; !dup {
							r.Settings[s.Name] = s
						}
					}
				}
				return true
			})
		}
	}
	return r, nil
}

// envRead recognises env.<Method>(name, [def,] help...) with a constant name.
func (t *sourceTree) envRead(p *goPackage, f *ast.File, method string, call *ast.CallExpr) (setting, bool) {
	hasDef, ok := envMethods[method]
	if !ok || len(call.Args) < 2 {
		return setting{}, false
	}
	name := t.eval(p, f, call.Args[0])
	if name == nil || name.Kind() != constant.String || !envName.MatchString(constant.StringVal(name)) {
		return setting{}, false
	}
	s := setting{Name: constant.StringVal(name), Method: method, Pos: t.fset.Position(call.Pos()).String()}
	if hasDef {
		s.Def = t.eval(p, f, call.Args[1])
	}
	if method == "PostgresURL" { // config's exported name for the same reader
		s.Method = "postgres"
	}
	if base, ok := strings.CutSuffix(method, "Range"); ok && len(call.Args) >= 4 {
		s.Method = base
		s.Min, s.Max = t.eval(p, f, call.Args[2]), t.eval(p, f, call.Args[3])
	}
	if method == "OneOf" {
		for _, a := range call.Args[min(3, len(call.Args)):] {
			if v := t.eval(p, f, a); v != nil && v.Kind() == constant.String {
				s.Allowed = append(s.Allowed, constant.StringVal(v))
			}
		}
	}
	return s, true
}

// timeUnits are the time package's duration constants.
var timeUnits = map[string]int64{
	"Nanosecond": 1, "Microsecond": 1e3, "Millisecond": 1e6,
	"Second": 1e9, "Minute": 60e9, "Hour": 3600e9,
}

// eval evaluates a constant expression of the repository's source: literals,
// named constants (also of other repository packages), time units,
// arithmetic, shifts and conversions. It returns nil for anything else.
func (t *sourceTree) eval(p *goPackage, f *ast.File, e ast.Expr) constant.Value {
	switch e := e.(type) {
	case *ast.BasicLit:
		return constant.MakeFromLiteral(e.Value, e.Kind, 0)
	case *ast.ParenExpr:
		return t.eval(p, f, e.X)
	case *ast.Ident:
		switch e.Name {
		case "true":
			return constant.MakeBool(true)
		case "false":
			return constant.MakeBool(false)
		}
		if c, ok := p.consts[e.Name]; ok {
			return t.eval(p, c.file, c.expr)
		}
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		if !ok {
			return nil
		}
		target, ok := t.imports(f)[x.Name]
		if !ok {
			return nil
		}
		if target == "time" {
			if v, ok := timeUnits[e.Sel.Name]; ok {
				return constant.MakeInt64(v)
			}
			return nil
		}
		if _, local := t.dirOf(target); !local {
			return nil
		}
		q, err := t.pkg(target)
		if err != nil {
			return nil
		}
		if c, ok := q.consts[e.Sel.Name]; ok {
			return t.eval(q, c.file, c.expr)
		}
	case *ast.UnaryExpr:
		x := t.eval(p, f, e.X)
		if x == nil {
			return nil
		}
		return constant.UnaryOp(e.Op, x, 0)
	case *ast.BinaryExpr:
		x, y := t.eval(p, f, e.X), t.eval(p, f, e.Y)
		if x == nil || y == nil {
			return nil
		}
		switch e.Op {
		case token.SHL, token.SHR:
			s, ok := constant.Uint64Val(y)
			if !ok {
				return nil
			}
			return constant.Shift(x, e.Op, uint(s))
		case token.QUO:
			if x.Kind() == constant.Int && y.Kind() == constant.Int {
				return constant.BinaryOp(x, token.QUO_ASSIGN, y) // integer division
			}
		}
		return constant.BinaryOp(x, e.Op, y)
	case *ast.CallExpr:
		// A conversion such as time.Duration(5) or int64(x).
		if len(e.Args) == 1 {
			return t.eval(p, f, e.Args[0])
		}
	}
	return nil
}

// serviceDirs lists the directories under services/, each one service.
func serviceDirs(fsys fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(fsys, "services")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
