//! The committed `deploy/nats/auth.conf` is exactly what the generator
//! makes for the sample federation's public keys: permissions cannot drift
//! from the code by hand edits, and no seed is in it.

use waymark_federation::SAMPLE;
use waymark_federation::natsauth::{self, PROVISIONER, User};
use waymark_types::AgencyId;

#[test]
fn committed_auth_conf_matches_the_generator() {
    let path = waymark_testkit::workspace_root().join("deploy/nats/auth.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut users = Vec::new();
    let mut name: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if line.starts_with("      # ") {
            name = Some(t.trim_start_matches("# ").to_owned());
        } else if let Some(rest) = t.strip_prefix("{ nkey: \"") {
            let nkey = rest.split('"').next().unwrap().to_owned();
            assert!(nkey.starts_with('U'), "not a public user key: {nkey}");
            let who = name.take().expect("a name comment before each user");
            let permissions = if who == PROVISIONER {
                natsauth::provisioner_permissions()
            } else {
                natsauth::agency_permissions(&AgencyId::new(&who).unwrap())
            };
            users.push(User {
                name: who,
                nkey,
                permissions,
            });
        }
    }
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let mut want = vec![PROVISIONER];
    want.extend(SAMPLE.iter().map(|m| m.id));
    assert_eq!(names, want);
    assert_eq!(
        natsauth::render(&users),
        text,
        "{} differs from the generator; regenerate it (deploy/nats/README.md)",
        path.display()
    );
}
