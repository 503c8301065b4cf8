package k8stest

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// endpoint is one end of a connection: a pod (with labels, in a namespace)
// or an address outside the cluster (IP set, no labels).
type endpoint struct {
	Name      string
	Namespace string
	NSLabels  map[string]string
	Labels    map[string]string
	Ports     []corev1.ContainerPort // for named ports
	IP        netip.Addr
}

func (e endpoint) isPod() bool { return e.Labels != nil }

// flowAllowed evaluates the NetworkPolicy semantics of the API
// (https://kubernetes.io/docs/concepts/services-networking/network-policies/):
// a connection is allowed when the source's egress and the destination's
// ingress both allow it; a pod selected by no policy of a direction is not
// isolated in it. Peers given by ipBlock match only addresses outside the
// cluster, which is what the policies use them for.
func flowAllowed(pols []*networkingv1.NetworkPolicy, from, to endpoint, port int32, proto corev1.Protocol) (bool, error) {
	out, err := allowedBy(pols, networkingv1.PolicyTypeEgress, from, to, port, proto)
	if err != nil || !out {
		return false, err
	}
	return allowedBy(pols, networkingv1.PolicyTypeIngress, to, from, port, proto)
}

// allowedBy decides one direction for the pod self talking to peer
// (self is the source for egress, the destination for ingress).
func allowedBy(pols []*networkingv1.NetworkPolicy, dir networkingv1.PolicyType, self, peer endpoint, port int32, proto corev1.Protocol) (bool, error) {
	if !self.isPod() {
		return true, nil
	}
	// Named ports are resolved on the destination pod.
	dst := peer
	if dir == networkingv1.PolicyTypeIngress {
		dst = self
	}
	isolated := false
	for _, pol := range pols {
		if pol.Namespace != self.Namespace || !hasType(pol, dir) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
		if err != nil {
			return false, fmt.Errorf("networkpolicy %s: %w", pol.Name, err)
		}
		if !sel.Matches(labels.Set(self.Labels)) {
			continue
		}
		isolated = true
		type rule struct {
			peers []networkingv1.NetworkPolicyPeer
			ports []networkingv1.NetworkPolicyPort
		}
		var rules []rule
		if dir == networkingv1.PolicyTypeEgress {
			for _, r := range pol.Spec.Egress {
				rules = append(rules, rule{r.To, r.Ports})
			}
		} else {
			for _, r := range pol.Spec.Ingress {
				rules = append(rules, rule{r.From, r.Ports})
			}
		}
		for _, r := range rules {
			pm, err := peersMatch(pol, r.peers, peer)
			if err != nil {
				return false, err
			}
			if pm && portsMatch(r.ports, dst, port, proto) {
				return true, nil
			}
		}
	}
	return !isolated, nil
}

// hasType applies the API default: Ingress always, Egress when the policy
// has egress rules, unless policyTypes says otherwise.
func hasType(pol *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(pol.Spec.PolicyTypes) == 0 {
		return t == networkingv1.PolicyTypeIngress || len(pol.Spec.Egress) > 0
	}
	for _, pt := range pol.Spec.PolicyTypes {
		if pt == t {
			return true
		}
	}
	return false
}

func peersMatch(pol *networkingv1.NetworkPolicy, peers []networkingv1.NetworkPolicyPeer, e endpoint) (bool, error) {
	if len(peers) == 0 {
		return true, nil
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if e.isPod() {
				continue
			}
			in, err := inBlock(p.IPBlock, e.IP)
			if err != nil {
				return false, fmt.Errorf("networkpolicy %s: %w", pol.Name, err)
			}
			if in {
				return true, nil
			}
			continue
		}
		if !e.isPod() {
			continue
		}
		if p.NamespaceSelector == nil {
			if e.Namespace != pol.Namespace {
				continue
			}
		} else {
			ns, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector)
			if err != nil {
				return false, fmt.Errorf("networkpolicy %s: %w", pol.Name, err)
			}
			if !ns.Matches(labels.Set(e.NSLabels)) {
				continue
			}
		}
		if p.PodSelector != nil {
			ps, err := metav1.LabelSelectorAsSelector(p.PodSelector)
			if err != nil {
				return false, fmt.Errorf("networkpolicy %s: %w", pol.Name, err)
			}
			if !ps.Matches(labels.Set(e.Labels)) {
				continue
			}
		}
		return true, nil
	}
	return false, nil
}

func inBlock(b *networkingv1.IPBlock, ip netip.Addr) (bool, error) {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return false, err
	}
	if !cidr.Contains(ip) {
		return false, nil
	}
	for _, ex := range b.Except {
		p, err := netip.ParsePrefix(ex)
		if err != nil {
			return false, err
		}
		if p.Contains(ip) {
			return false, nil
		}
	}
	return true, nil
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, dst endpoint, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.String {
			for _, cp := range dst.Ports {
				if cp.Name == p.Port.StrVal && cp.ContainerPort == port && protocolOf(cp) == proto {
					return true
				}
			}
			continue
		}
		lo, hi := p.Port.IntVal, p.Port.IntVal
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if port >= lo && port <= hi {
			return true
		}
	}
	return false
}

func protocolOf(cp corev1.ContainerPort) corev1.Protocol {
	if cp.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return cp.Protocol
}
