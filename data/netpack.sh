#!/usr/bin/env bash
# Regenerates crates/scry-offline/data/netpack.bin.gz, the network data pack embedded in scry, from
# pinned versions of the registries' openly licensed data on npm. Maintainers run it to move the
# pins forward; nothing at build or run time needs it.
#
#   data/netpack.sh            # needs npm, a network path to the npm registry, and cargo
set -euo pipefail

ASN_PACKAGE="@ip-location-db/asn@2.3.2026061719"
ASN_INTEGRITY="sha512-PpqYi7wyEyWwunXBtl+y3Vi403SvNywotWwvmiYCOUtE0SVol/Sf492Ee+eErEznmGapxEQB2SAfrpXuZ9a+vQ=="
COUNTRY_PACKAGE="@ip-location-db/geo-whois-asn-country@2.3.2026061719"
COUNTRY_INTEGRITY="sha512-9MQ3r2q+GDLwW+Mye5duWnHe3n1qB1ZcNUcM9P58CpdW86Gt44AgfIrem6Pcy/tbCHhQ70RJCLngQQyYnaEjbw=="
DATA_AS_OF="2026-06-17"

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() { # package integrity folder
    local json
    json="$(cd "$work" && npm pack --json --ignore-scripts "$1" 2>/dev/null)"
    local file integrity
    file="$(node -e 'const p=JSON.parse(process.argv[1])[0]; console.log(p.filename)' "$json")"
    integrity="$(node -e 'const p=JSON.parse(process.argv[1])[0]; console.log(p.integrity)' "$json")"
    if [ "$integrity" != "$2" ]; then
        echo "$1: integrity $integrity, pinned $2" >&2
        exit 1
    fi
    mkdir -p "$work/$3"
    tar xzf "$work/$file" -C "$work/$3"
}

fetch "$ASN_PACKAGE" "$ASN_INTEGRITY" asn
fetch "$COUNTRY_PACKAGE" "$COUNTRY_INTEGRITY" country

cat > "$work/meta.json" <<JSON
{
  "built": "$(date -u +%Y-%m-%d)",
  "sources": [
    {"provides": "asn", "package": "$ASN_PACKAGE", "license": "CC BY 4.0",
     "attribution": "RouteViews, DB-IP (db-ip.com) and the NRO, via ip-location-db", "data_as_of": "$DATA_AS_OF"},
    {"provides": "country", "package": "$COUNTRY_PACKAGE", "license": "CC BY 4.0",
     "attribution": "NRO (the five Regional Internet Registries), via ip-location-db", "data_as_of": "$DATA_AS_OF"}
  ]
}
JSON

cargo run --quiet --release -p scry -- data build --meta "$work/meta.json" \
    --asn "$work/asn/package/asn-ipv4.csv" --asn "$work/asn/package/asn-ipv6.csv" \
    --country "$work/country/package/geo-whois-asn-country-ipv4.csv" \
    --country "$work/country/package/geo-whois-asn-country-ipv6.csv" \
    --output "$root/crates/scry-offline/data/netpack.bin.gz"
