package events

import (
	"fmt"
	"strings"
)

// countries holds the 249 officially assigned ISO 3166-1 alpha-2 codes. Graph
// refuses a usageLocation outside this list, and a refused PATCH would only
// surface in the license step, after the invitation is already out; checking
// here rejects the event before anything happens. Exceptionally or
// transitionally reserved codes (UK, EU, EL, …) and user-assigned ones (XX, …)
// are deliberately absent.
var countries = func() map[string]bool {
	const list = `
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW`
	m := make(map[string]bool)
	for _, c := range strings.Fields(list) {
		m[c] = true
	}
	return m
}()

// lookalikes are codes people reach for that ISO reserves for something else.
var lookalikes = map[string]string{
	"UK": "GB", // United Kingdom
	"EL": "GR", // Greece, as the EU writes it
}

// checkCountry returns the upper-cased code, or why it is not one.
func checkCountry(s string) (string, string) {
	up, ok := asciiUpper2(s)
	if !ok {
		return "", fmt.Sprintf("%s is not a two-letter ISO 3166-1 alpha-2 code; use the user's country, e.g. \"PT\" or \"GB\"", quote(s))
	}
	if countries[up] {
		return up, ""
	}
	if alt, ok := lookalikes[up]; ok {
		return "", fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 code (did you mean %q?)", s, alt)
	}
	return "", fmt.Sprintf("%q is not an officially assigned ISO 3166-1 alpha-2 code; use the user's country, e.g. \"PT\" or \"GB\"", s)
}

// asciiUpper2 upper-cases a two-letter ASCII code. It refuses anything else
// rather than calling strings.ToUpper, which would turn e.g. "ſ" into "S".
func asciiUpper2(s string) (string, bool) {
	if len(s) != 2 {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
		default:
			return "", false
		}
	}
	return string(b), true
}
