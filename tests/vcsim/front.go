package main

// The counting front: an HTTPS reverse proxy in front of the simulator that
// counts every request to /sdk (and the SOAP method it calls), so tests can
// assert how many vCenter calls an operation made.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stats counts the requests that reached /sdk since start or the last reset.
type stats struct {
	mu       sync.Mutex
	total    int
	byMethod map[string]int
}

func (s *stats) add(method string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.byMethod[method]++
}

func (s *stats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total = 0
	s.byMethod = map[string]int{}
}

type statsJSON struct {
	Total    int            `json:"total"`
	ByMethod map[string]int `json:"by_method"`
}

func (s *stats) snapshot() statsJSON {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := statsJSON{Total: s.total, ByMethod: make(map[string]int, len(s.byMethod))}
	for k, v := range s.byMethod {
		out.ByMethod[k] = v
	}
	return out
}

type front struct {
	delayMu sync.Mutex
	delays  map[string]time.Duration // SOAP method → hold its response this long
	fails   map[string]int           // SOAP method → answer its next N calls with a fault
	srv     *http.Server
	url     string // https://127.0.0.1:PORT
	host    string // 127.0.0.1:PORT
	certPEM string
	stats   *stats
}

// startFront listens on a random loopback port and proxies to backend.
func startFront(backend *url.URL, control http.Handler) (*front, error) {
	cert, certPEM, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{
		host:    ln.Addr().String(),
		certPEM: certPEM,
		stats:   &stats{byMethod: map[string]int{}},
		delays:  map[string]time.Duration{},
		fails:   map[string]int{},
	}
	f.url = "https://" + f.host
	f.srv = &http.Server{
		Handler:   f.handler(backend, control),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  log.New(ioutil.Discard, "", 0), // clients probing TLS are noise
	}
	go func() {
		if err := f.srv.ServeTLS(ln, "", ""); err != http.ErrServerClosed {
			log.Printf("front: %v", err)
		}
	}()
	return f, nil
}

func (f *front) Close() { _ = f.srv.Close() }

func (f *front) handler(backend *url.URL, control http.Handler) http.Handler {
	target := &url.URL{Scheme: backend.Scheme, Host: backend.Host}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{
		// The backend hop is loopback to the simulator's throwaway certificate.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	proxy.ErrorLog = log.New(ioutil.Discard, "", 0)

	mux := http.NewServeMux()
	mux.HandleFunc("/_stats", f.serveStats)
	mux.HandleFunc("/_stats/reset", f.serveReset)
	mux.HandleFunc("/_control/delay", f.serveDelay)
	mux.HandleFunc("/_control/fail", f.serveFail)
	mux.HandleFunc("/_control/customization", serveCustomization)
	mux.HandleFunc("/_control/guest_ipv6", serveGuestIPv6)
	mux.Handle("/_control/", control)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sdk" || strings.HasPrefix(r.URL.Path, "/sdk/") {
			name := requestName(r)
			f.stats.add(name)
			if os.Getenv("VCSIM_TRACE") != "" {
				t0 := time.Now()
				log.Printf("trace: %s %s begin", r.RemoteAddr, name)
				defer func() { log.Printf("trace: %s %s end %s", r.RemoteAddr, name, time.Since(t0)) }()
			}
			f.delayMu.Lock()
			d := f.delays[name]
			fail := f.fails[name] > 0
			if fail {
				f.fails[name]--
			}
			f.delayMu.Unlock()
			if !fail && name == "CustomizeVM_Task" {
				body, _ := ioutil.ReadAll(r.Body)
				r.Body = ioutil.NopCloser(bytes.NewReader(body))
				recordCustomization(body)
			}
			powerOnVM, customizing := "", false
			if !fail && name == "PowerOnVM_Task" {
				body, _ := ioutil.ReadAll(r.Body)
				r.Body = ioutil.NopCloser(bytes.NewReader(body))
				powerOnVM, customizing = powerOnTarget(body)
			}
			if customizing {
				// The power-on runs the customization: its IPv6 part is ours to apply,
				// before the answer leaves, as the simulator does with the IPv4 part.
				rec := httptest.NewRecorder()
				proxy.ServeHTTP(rec, r.WithContext(context.Background()))
				applyIPv6AfterPowerOn(powerOnVM)
				time.Sleep(d)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			if fail {
				w.Header().Set("Content-Type", "text/xml; charset=utf-8")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(injectedFault))
				return
			}
			if d > 0 {
				// The call runs now, even if the client goes away meanwhile; only its
				// answer is held back: a client killed while waiting leaves the result.
				rec := httptest.NewRecorder()
				proxy.ServeHTTP(rec, r.WithContext(context.Background()))
				time.Sleep(d)
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})
	return mux
}

// serveDelay (POST /_control/delay?method=CloneVM_Task&ms=30000) holds back the
// answers of one SOAP method; ms=0 ends it.
func (f *front) serveDelay(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	ms, err := strconv.Atoi(q.Get("ms"))
	if err != nil || q.Get("method") == "" {
		http.Error(w, "need method and ms", http.StatusBadRequest)
		return
	}
	f.delayMu.Lock()
	f.delays[q.Get("method")] = time.Duration(ms) * time.Millisecond
	f.delayMu.Unlock()
	writeJSON(w, map[string]bool{"ok": true})
}

// injectedFault is the SOAP fault a call failed by /_control/fail gets.
const injectedFault = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>injected failure</faultstring>
<detail><SystemErrorFault xmlns="urn:vim25" xsi:type="SystemError"><reason>injected failure</reason></SystemErrorFault></detail>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>`

// serveFail (POST /_control/fail?method=PowerOnVM_Task&count=1) answers the next
// count calls of a SOAP method with a SystemError fault, without running them.
func (f *front) serveFail(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("count"))
	if err != nil || q.Get("method") == "" {
		http.Error(w, "need method and count", http.StatusBadRequest)
		return
	}
	f.delayMu.Lock()
	f.fails[q.Get("method")] = n
	f.delayMu.Unlock()
	writeJSON(w, map[string]bool{"ok": true})
}

func (f *front) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, f.stats.snapshot())
}

func (f *front) serveReset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	f.stats.reset()
	writeJSON(w, f.stats.snapshot())
}

func writeJSON(w http.ResponseWriter, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// requestName is the SOAP method of a POST (the first element inside the SOAP
// Body), or "<HTTP method> <path>" for anything else, e.g. a GET of
// /sdk/vimServiceVersions.xml. The body is put back for the proxy.
func requestName(r *http.Request) string {
	if r.Method != http.MethodPost || r.Body == nil {
		return r.Method + " " + r.URL.Path
	}
	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	if err != nil {
		return "unreadable"
	}
	if name := soapMethod(body); name != "" {
		return name
	}
	return "unknown"
}

// soapMethod returns the local name of the first element inside soap Body.
func soapMethod(body []byte) string {
	dec := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if inBody {
			return start.Name.Local
		}
		inBody = start.Name.Local == "Body"
	}
}

// selfSignedCert makes a fresh P-256 certificate for 127.0.0.1 / localhost.
func selfSignedCert() (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim front", Organization: []string{"vsphereipam tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		// Not a CA: webpki (rustls) rejects a CA certificate used as a server
		// certificate, while a self-signed leaf can be trusted as a root as is.
		IsCA:        false,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, string(certPEM), err
}
