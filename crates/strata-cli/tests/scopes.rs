//! Property tests of tenant scopes (issue 17): whatever key a tenant is handed, what it
//! writes lands under its own prefix, and no other tenant can see it. Runs on the setup the
//! CLI builds, from a config file with two tenants sharing one bucket.

use proptest::prelude::*;
use strata::Strata;
use strata_testkit::keys;

/// Keys over the characters that try to climb out of a prefix or disguise a separator.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "b", "/", ".", "..", "\\", "%2F", "%2f", "%2E", "%5C", "\n", "\0", " ", "é",
        "tenants", "../b", "b/", ":", "\u{202e}",
    ]);
    prop::collection::vec(pieces, 0..10).prop_map(|v| v.concat())
}

fn setup() -> Strata {
    Strata::from_toml_str(
        "[connections.mem]\nkind = 'memory'\n[buckets.shared]\nconnection = 'mem'\n\
         [tenants.a]\nbucket = 'shared'\nprefix = 'tenants/a'\n\
         [tenants.b]\nbucket = 'shared'\nprefix = 'tenants/b'\n",
        "scopes.toml",
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nothing_a_tenant_writes_escapes_its_prefix(k in hostile()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let strata = setup();
        let router = strata.router().unwrap();
        let (a, b) = (router.tenant("a").unwrap(), router.tenant("b").unwrap());
        let shared = strata.bucket("shared").unwrap();
        let wrote = rt.block_on(a.put(&k, "secret"));
        let all = rt.block_on(keys(shared.list("")));
        match wrote {
            Ok(_) => {
                prop_assert_eq!(all.len(), 1);
                prop_assert!(all[0].starts_with("tenants/a/"), "{:?}", all);
                prop_assert_eq!(rt.block_on(a.get(&k)).unwrap().bytes, "secret");
                // The other tenant sees nothing of it, by any spelling.
                prop_assert!(rt.block_on(keys(b.list(""))).is_empty());
                prop_assert!(!rt.block_on(b.exists(&k)).unwrap_or(false));
            }
            Err(e) => {
                prop_assert!(all.is_empty(), "refused ({e}) yet wrote {:?}", all);
                prop_assert!(matches!(e.kind(), storage_core::ErrorKind::BadInput), "{}", e);
            }
        }
        // A narrower view is still inside the tenant.
        if let Ok(sub) = a.scoped(&k) {
            let p = sub.prefix().map(|p| p.as_str()).unwrap_or("");
            prop_assert!(p == "tenants/a" || p.starts_with("tenants/a/"), "{}", p);
        }
        // Keys that disguise a separator or a dot are refused by tenants outright.
        if ["\\", "%2F", "%2f", "%2E", "%5C"].iter().any(|d| k.contains(d)) {
            prop_assert!(a.check_key(&k).is_err());
            prop_assert!(a.scoped(&k).is_err());
        }
    }
}
