package shared

// The fleet's messages, and their version. See docs/fleet-scaling.md.
//
// Protocol 2 (this one) sends nothing that every instance receives but
// the purges themselves:
//
//   - a ban is published on the purge channel (every instance hears it:
//     it must apply it); its request ID, the part of the ban's ID before
//     '@', is "<purge>/<asker>": the purge's random hex name and the ID
//     of the instance that asked;
//   - an instance confirms a ban it applied on the asker's own reply
//     channel, "<prefix>:purge:ack:<asker>", which only the asker hears;
//   - an instance's heartbeat publishes its echo on its own reply
//     channel, so that it hears it if its subscription is alive and on
//     the server the fleet writes to (see checkEcho).
//
// Membership and liveness are data, not messages: the members sorted set
// scored by Redis's clock, and each member's info key (heartbeat.go).
//
// Protocol 1 (releases before it) published every confirmation and every
// heartbeat's echo on one shared ack channel that every instance
// listened to: N messages a second to each of N instances, N(N+1) per
// purge. The two interoperate under one prefix, so a fleet can be
// upgraded one instance at a time: they share the purge channel, the ban
// wire form (tiers/banwire.go: a protocol 1 instance takes the longer
// request ID as the opaque string it is) and the members set; a ban
// whose ID names no asker comes from a protocol 1 instance, and is
// confirmed on the shared channel, which protocol 2 instances also
// listen to (silent once no protocol 1 instance is left) for the
// confirmations of protocol 1 instances.

import "strings"

// Protocol is the version of the fleet's messages this package speaks.
const Protocol = 2

// replyChannel is the channel only the instance id listens to: the
// confirmations of its purges and its heartbeat's echo.
func (l *purgeLog) replyChannel(id string) string { return l.prefix + ":purge:ack:" + id }

// ackChannel is protocol 1's shared confirmation channel.
func (l *purgeLog) ackChannel() string { return l.prefix + ":purge:ack" }

// requestID is the request part of the ID of a ban that instance asker
// asks for as purge (a hex name: it holds no '/').
func requestID(purge, asker string) string { return purge + "/" + asker }

// epochBanPrefix starts the request ID of an epoch's opening ban (see
// epochLua).
const epochBanPrefix = "epoch-"

// confirmChannel returns the channel on which a ban with ID banID is
// confirmed: its asker's reply channel, protocol 1's shared channel for
// a ban that names no asker, and none (false) for an epoch's opening
// ban, which nobody waits for.
func (l *purgeLog) confirmChannel(banID string) (string, bool) {
	req, _, _ := strings.Cut(banID, "@")
	if strings.HasPrefix(req, epochBanPrefix) {
		return "", false
	}
	if _, asker, ok := strings.Cut(req, "/"); ok && asker != "" {
		return l.replyChannel(asker), true
	}
	return l.ackChannel(), true
}

// confirmation is the message by which instance member confirms the ban
// with ID banID: "<ban ID>|<member>", in both protocols.
func confirmation(banID, member string) string { return banID + "|" + member }

// parseConfirmation reads a confirmation: the purge's name (the request
// ID without its asker) and the confirming member.
func parseConfirmation(payload string) (purge, member string, ok bool) {
	banID, member, ok := strings.Cut(payload, "|")
	if !ok || member == "" {
		return "", "", false
	}
	req, _, _ := strings.Cut(banID, "@")
	purge, _, _ = strings.Cut(req, "/")
	return purge, member, true
}
