//! TOML task policies: the parser never panics; an error points at a real place in
//! the text; a policy that parses round-trips through its canonical text.

use tasksandbox::policy::Policy;

/// The target's body. Never builds the policy (`build()` looks at the host).
pub fn policy_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text, "fuzz.toml") {
        Ok(policy) => {
            let canonical = policy.to_toml();
            let again = Policy::parse(&canonical, "fuzz.toml").unwrap_or_else(|e| {
                panic!(
                    "the canonical text does not parse: {}\n{canonical}",
                    e.render()
                )
            });
            assert_eq!(
                again, policy,
                "the round trip changed the policy:\n{canonical}"
            );
            assert_eq!(
                again.to_toml(),
                canonical,
                "the canonical text is not stable"
            );
        }
        Err(err) => {
            let lines = text.lines().count().max(1);
            assert!(
                (1..=lines + 1).contains(&err.line()) && err.column() >= 1,
                "error outside the text: line {} column {} of {lines} lines: {}",
                err.line(),
                err.column(),
                err.render()
            );
            let _ = err.render();
        }
    }
}
