package main

// Guest customization specs as they reached the simulator: the front hands
// every CustomizeVM_Task request body to recordCustomization, and
// GET /_control/customization?vm=NAME returns the last one for that VM as
// JSON, so tests can check what a real vCenter would have been asked to do.
// The simulator itself applies the host name and the fixed IPs at power-on.

import (
	"bytes"
	"encoding/xml"
	"log"
	"net/http"
	"strconv"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type passwordJSON struct {
	Value     string `json:"value"`
	PlainText bool   `json:"plain_text"`
}

type linuxJSON struct {
	HostName   string `json:"host_name"`
	Domain     string `json:"domain"`
	TimeZone   string `json:"time_zone"`
	HwClockUTC *bool  `json:"hw_clock_utc"`
	ScriptText string `json:"script_text"`
}

type windowsJSON struct {
	ComputerName        string        `json:"computer_name"`
	Password            *passwordJSON `json:"password"`
	TimeZone            int32         `json:"time_zone"`
	AutoLogon           bool          `json:"auto_logon"`
	AutoLogonCount      int32         `json:"auto_logon_count"`
	FullName            string        `json:"full_name"`
	OrgName             string        `json:"org_name"`
	ProductID           string        `json:"product_id"`
	JoinWorkgroup       string        `json:"join_workgroup"`
	JoinDomain          string        `json:"join_domain"`
	DomainAdmin         string        `json:"domain_admin"`
	DomainAdminPassword *passwordJSON `json:"domain_admin_password"`
	DomainOU            string        `json:"domain_ou"`
	RunOnce             []string      `json:"run_once"`
}

type adapterJSON struct {
	MAC        string   `json:"mac"`
	IP         string   `json:"ip"`
	SubnetMask string   `json:"subnet_mask"`
	Gateways   []string `json:"gateways"`
	DNSServers []string `json:"dns_servers"`
	DNSDomain  string   `json:"dns_domain"`
}

// customizationJSON is one CustomizeVM_Task request, flattened.
type customizationJSON struct {
	VM           string        `json:"vm"`
	Name         string        `json:"name"`
	Identity     string        `json:"identity"` // CustomizationLinuxPrep | CustomizationSysprep
	Linux        *linuxJSON    `json:"linux"`
	Windows      *windowsJSON  `json:"windows"`
	Adapters     []adapterJSON `json:"adapters"`
	DNSSuffixes  []string      `json:"dns_suffixes"`
	DNSServers   []string      `json:"dns_servers"`
	ChangeSID    *bool         `json:"change_sid"`
	RequestCount int           `json:"request_count"` // CustomizeVM_Task calls seen for this VM
}

var customizations = struct {
	sync.Mutex
	byName map[string]customizationJSON
}{byName: map[string]customizationJSON{}}

func password(p *types.CustomizationPassword) *passwordJSON {
	if p == nil {
		return nil
	}
	return &passwordJSON{Value: p.Value, PlainText: p.PlainText}
}

func fixedName(n types.BaseCustomizationName) string {
	if f, ok := n.(*types.CustomizationFixedName); ok {
		return f.Name
	}
	return ""
}

// recordCustomization decodes a CustomizeVM_Task SOAP body and keeps it under
// the VM's name. Bodies it cannot decode are logged, not fatal: the simulator
// answers them itself.
func recordCustomization(body []byte) {
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		log.Printf("customization: %v", err)
		return
	}
	req, ok := method.Body.(*types.CustomizeVM_Task)
	if !ok {
		return
	}
	spec := req.Spec
	rec := customizationJSON{VM: req.This.Value}
	if vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine); ok {
		rec.Name = vm.Name
	}
	switch id := spec.Identity.(type) {
	case *types.CustomizationLinuxPrep:
		rec.Identity = "CustomizationLinuxPrep"
		rec.Linux = &linuxJSON{
			HostName:   fixedName(id.HostName),
			Domain:     id.Domain,
			TimeZone:   id.TimeZone,
			HwClockUTC: id.HwClockUTC,
			ScriptText: id.ScriptText,
		}
	case *types.CustomizationSysprep:
		rec.Identity = "CustomizationSysprep"
		w := &windowsJSON{
			ComputerName:        fixedName(id.UserData.ComputerName),
			Password:            password(id.GuiUnattended.Password),
			TimeZone:            id.GuiUnattended.TimeZone,
			AutoLogon:           id.GuiUnattended.AutoLogon,
			AutoLogonCount:      id.GuiUnattended.AutoLogonCount,
			FullName:            id.UserData.FullName,
			OrgName:             id.UserData.OrgName,
			ProductID:           id.UserData.ProductId,
			JoinWorkgroup:       id.Identification.JoinWorkgroup,
			JoinDomain:          id.Identification.JoinDomain,
			DomainAdmin:         id.Identification.DomainAdmin,
			DomainAdminPassword: password(id.Identification.DomainAdminPassword),
			// govmomi 0.24.2 predates domainOU (vSphere 8.0U2): read it from the XML.
			DomainOU: elementText(body, "domainOU"),
		}
		if id.GuiRunOnce != nil {
			w.RunOnce = id.GuiRunOnce.CommandList
		}
		rec.Windows = w
	}
	if o, ok := spec.Options.(*types.CustomizationWinOptions); ok {
		sid := o.ChangeSID
		rec.ChangeSID = &sid
	}
	for _, m := range spec.NicSettingMap {
		a := adapterJSON{
			MAC:        m.MacAddress,
			SubnetMask: m.Adapter.SubnetMask,
			Gateways:   m.Adapter.Gateway,
			DNSServers: m.Adapter.DnsServerList,
			DNSDomain:  m.Adapter.DnsDomain,
		}
		if ip, ok := m.Adapter.Ip.(*types.CustomizationFixedIp); ok {
			a.IP = ip.IpAddress
		}
		rec.Adapters = append(rec.Adapters, a)
	}
	rec.DNSSuffixes = spec.GlobalIPSettings.DnsSuffixList
	rec.DNSServers = spec.GlobalIPSettings.DnsServerList

	customizations.Lock()
	defer customizations.Unlock()
	rec.RequestCount = customizations.byName[rec.Name].RequestCount + 1
	customizations.byName[rec.Name] = rec
}

// elementText is the text of the first element with this local name, or "".
func elementText(body []byte, name string) string {
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if start, ok := tok.(xml.StartElement); ok && start.Name.Local == name {
			var text string
			if dec.DecodeElement(&text, &start) == nil {
				return text
			}
			return ""
		}
	}
}

// serveCustomization (GET /_control/customization?vm=NAME) answers the last
// customization spec that reached the VM, or 404 when none did.
func serveCustomization(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	name := r.URL.Query().Get("vm")
	customizations.Lock()
	rec, ok := customizations.byName[name]
	customizations.Unlock()
	if !ok {
		http.Error(w, "no customization recorded for VM "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	writeJSON(w, rec)
}
