// Command harness-render renders Harness-style manifests with Go's own text/template,
// the engine Harness uses for `{{.Values.x}}`, so the test sees what Harness would apply.
//
// Usage: go run main.go VALUES.json TEMPLATE_DIR OUT_DIR
//
// VALUES.json holds values.yaml after the ${...} workflow expressions were replaced
// (deploy/ci/validate/render.py does that; Go's standard library has no YAML parser). Every
// *.yaml in TEMPLATE_DIR is rendered to OUT_DIR under the same name, with
// missingkey=error: a template naming a value that values.yaml lacks fails the test
// instead of rendering "<no value>".
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: harness-render VALUES.json TEMPLATE_DIR OUT_DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "harness-render:", err)
		os.Exit(1)
	}
}

func run(valuesPath, templateDir, outDir string) error {
	raw, err := os.ReadFile(valuesPath)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber() // keep 10 as "10", not "1e+01"
	var values map[string]interface{}
	if err := dec.Decode(&values); err != nil {
		return fmt.Errorf("%s: %w", valuesPath, err)
	}
	files, err := filepath.Glob(filepath.Join(templateDir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.yaml templates in %s", templateDir)
	}
	sort.Strings(files)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	data := map[string]interface{}{"Values": values}
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		name := filepath.Base(f)
		t, err := template.New(name).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return err
		}
		var out strings.Builder
		if err := t.Execute(&out, data); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, name), []byte(out.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
