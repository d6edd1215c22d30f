// Command go-tlog checks a Parmana transparency log with Go's golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog, an implementation Parmana did not write (docs/transparency-log.md,
// "Independent checks").
//
// It fetches the signed checkpoint of a running `parmana serve --log-key` from <url>/log/checkpoint
// and opens it with note.Open and the log's verifier key; reads the tree through C2SP tlog-tiles
// paths with tlog.TileHashReader (which authenticates every tile against the checkpoint's root);
// recomputes the root with tlog.TreeHash; fetches every entry bundle and checks every entry with
// tlog.ProveRecord and tlog.CheckRecord; with -old, proves and checks consistency from an older
// checkpoint with tlog.ProveTree and tlog.CheckTree; and checks each -proof file (a C2SP
// tlog-proof) offline with note.Open and tlog.CheckRecord. Any failure exits 1.
//
// Built offline against Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-tlog .
package main

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const tileHeight = 8

type proofFiles []string

func (p *proofFiles) String() string     { return strings.Join(*p, ",") }
func (p *proofFiles) Set(v string) error { *p = append(*p, v); return nil }

var (
	baseURL = flag.String("url", "", "the server, e.g. http://127.0.0.1:8080")
	token   = flag.String("token", "", "a bearer token with the read scope (none for a public log)")
	vkey    = flag.String("vkey", "", "the log's note verifier key: name+hash+base64(0x01||key)")
	oldFile = flag.String("old", "", "an older signed checkpoint the log must extend")
	proofs  proofFiles
)

func main() {
	flag.Var(&proofs, "proof", "a .tlog-proof file to check offline (repeatable)")
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "go-tlog:", err)
		os.Exit(1)
	}
}

func run() error {
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %v", err)
	}
	verifiers := note.VerifierList(verifier)
	for _, file := range proofs {
		if err := checkProofFile(file, verifiers); err != nil {
			return fmt.Errorf("%s: %v", file, err)
		}
	}
	if *baseURL == "" {
		return nil
	}
	raw, err := fetch("/log/checkpoint")
	if err != nil {
		return err
	}
	tree, origin, err := openCheckpoint(raw, verifiers)
	if err != nil {
		return fmt.Errorf("checkpoint: %v", err)
	}
	if origin != verifier.Name() {
		return fmt.Errorf("checkpoint origin %q is not the key's name %q", origin, verifier.Name())
	}
	fmt.Printf("checkpoint: %s size %d root %s (note.Open: signature verified)\n", origin, tree.N, tree.Hash)

	reader := &tileReader{cache: map[string][]byte{}}
	hashes := tlog.TileHashReader(tree, reader)
	root, err := tlog.TreeHash(tree.N, hashes)
	if err != nil {
		return fmt.Errorf("tree hash from tiles: %v", err)
	}
	if root != tree.Hash {
		return fmt.Errorf("tree hash from tiles %s is not the checkpoint's %s", root, tree.Hash)
	}
	entries, err := readEntries(tree.N)
	if err != nil {
		return err
	}
	for i, entry := range entries {
		proof, err := tlog.ProveRecord(tree.N, int64(i), hashes)
		if err != nil {
			return fmt.Errorf("prove record %d: %v", i, err)
		}
		if err := tlog.CheckRecord(proof, tree.N, tree.Hash, int64(i), tlog.RecordHash(entry)); err != nil {
			return fmt.Errorf("record %d: %v", i, err)
		}
	}
	fmt.Printf("tiles: %d fetched, every one authenticated by tlog.TileHashReader; tree hash recomputed\n", len(reader.cache))
	fmt.Printf("entries: %d, each proved and checked with tlog.ProveRecord/CheckRecord\n", len(entries))

	if *oldFile != "" {
		raw, err := os.ReadFile(*oldFile)
		if err != nil {
			return err
		}
		old, oldOrigin, err := openCheckpoint(raw, verifiers)
		if err != nil {
			return fmt.Errorf("old checkpoint: %v", err)
		}
		if oldOrigin != origin || old.N > tree.N {
			return fmt.Errorf("old checkpoint %s/%d does not precede %s/%d", oldOrigin, old.N, origin, tree.N)
		}
		proof, err := tlog.ProveTree(tree.N, old.N, hashes)
		if err != nil {
			return fmt.Errorf("prove tree: %v", err)
		}
		if err := tlog.CheckTree(proof, tree.N, tree.Hash, old.N, old.Hash); err != nil {
			return fmt.Errorf("consistency with the old checkpoint: %v", err)
		}
		fmt.Printf("consistent: size %d extends the old checkpoint of size %d (tlog.ProveTree/CheckTree)\n", tree.N, old.N)
	}
	return nil
}

// openCheckpoint verifies a signed checkpoint note and reads its origin, size and root hash.
func openCheckpoint(raw []byte, verifiers note.Verifiers) (tlog.Tree, string, error) {
	n, err := note.Open(raw, verifiers)
	if err != nil {
		return tlog.Tree{}, "", err
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return tlog.Tree{}, "", errors.New("a checkpoint has an origin, a size and a root hash")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return tlog.Tree{}, "", fmt.Errorf("bad size %q", lines[1])
	}
	hash, err := tlog.ParseHash(lines[2])
	if err != nil {
		return tlog.Tree{}, "", fmt.Errorf("bad root hash %q", lines[2])
	}
	return tlog.Tree{N: size, Hash: hash}, lines[0], nil
}

// checkProofFile checks a C2SP tlog-proof: its checkpoint with note.Open, its entry (the extra
// data) at its index with tlog.CheckRecord.
func checkProofFile(file string, verifiers note.Verifiers) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	text := string(raw)
	split := strings.Index(text, "\n\n")
	if split < 0 {
		return errors.New("no blank line before the checkpoint")
	}
	head, checkpoint := strings.Split(text[:split], "\n"), text[split+2:]
	if len(head) < 2 || head[0] != "c2sp.org/tlog-proof@v1" {
		return errors.New("not a c2sp.org/tlog-proof@v1")
	}
	head = head[1:]
	var entry []byte
	if strings.HasPrefix(head[0], "extra ") {
		entry, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(head[0], "extra "))
		if err != nil {
			return fmt.Errorf("extra: %v", err)
		}
		head = head[1:]
	}
	if entry == nil {
		return errors.New("the proof carries no entry to check")
	}
	if len(head) < 1 || !strings.HasPrefix(head[0], "index ") {
		return errors.New("no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(head[0], "index "), 10, 64)
	if err != nil {
		return fmt.Errorf("index: %v", err)
	}
	var proof tlog.RecordProof
	for _, line := range head[1:] {
		hash, err := tlog.ParseHash(line)
		if err != nil {
			return fmt.Errorf("proof hash %q: %v", line, err)
		}
		proof = append(proof, hash)
	}
	tree, origin, err := openCheckpoint([]byte(checkpoint), verifiers)
	if err != nil {
		return fmt.Errorf("checkpoint: %v", err)
	}
	if err := tlog.CheckRecord(proof, tree.N, tree.Hash, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("inclusion: %v", err)
	}
	fmt.Printf("proof %s: entry %d included in %s size %d (note.Open, tlog.CheckRecord)\n", file, index, origin, tree.N)
	return nil
}

func fetch(path string) ([]byte, error) {
	req, err := http.NewRequest("GET", *baseURL+path, nil)
	if err != nil {
		return nil, err
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<24))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return body, nil
}

// c2spPath turns sumdb's tile path (tile/H/L/N[.p/W], tile/H/data/N…) into C2SP's (tile/L/N…,
// tile/entries/N…): the same index encoding, without the height.
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if strings.HasPrefix(p, "data/") {
		p = "entries/" + strings.TrimPrefix(p, "data/")
	}
	return "/log/tile/" + p
}

// tileReader reads hash tiles over HTTP for tlog.TileHashReader.
type tileReader struct {
	cache map[string][]byte
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := c2spPath(t)
		if data, ok := r.cache[path]; ok {
			out[i] = data
			continue
		}
		data, err := fetch(path)
		if err != nil {
			return nil, err
		}
		r.cache[path] = data
		out[i] = data
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// readEntries fetches every entry bundle of a tree of n entries and splits it into entries.
func readEntries(n int64) ([][]byte, error) {
	var entries [][]byte
	for k := int64(0); k*256 < n; k++ {
		w := n - k*256
		if w > 256 {
			w = 256
		}
		path := c2spPath(tlog.Tile{H: tileHeight, L: -1, N: k, W: int(w)})
		data, err := fetch(path)
		if err != nil {
			return nil, err
		}
		for i := int64(0); i < w; i++ {
			if len(data) < 2 {
				return nil, fmt.Errorf("%s: short bundle", path)
			}
			length := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+length {
				return nil, fmt.Errorf("%s: short entry", path)
			}
			entries = append(entries, data[2:2+length])
			data = data[2+length:]
		}
		if len(data) != 0 {
			return nil, fmt.Errorf("%s: %d bytes after the last entry", path, len(data))
		}
	}
	return entries, nil
}
