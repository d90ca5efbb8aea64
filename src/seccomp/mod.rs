//! TEMPORARY stub until the seccomp module lands.
#![allow(missing_docs, dead_code)]
use crate::capabilities::Capabilities;
use std::sync::Arc;
#[derive(Debug, Clone)]
pub enum SeccompPolicy {
    Default,
}
#[derive(Debug)]
pub struct CompiledSeccomp {
    programs: Vec<seccompiler::BpfProgram>,
}
impl CompiledSeccomp {
    pub fn programs(&self) -> &[seccompiler::BpfProgram] {
        &self.programs
    }
}
#[derive(Debug, thiserror::Error)]
#[error("seccomp")]
pub struct SeccompError;
impl SeccompPolicy {
    pub fn compile(&self, _caps: Capabilities) -> Result<Arc<CompiledSeccomp>, SeccompError> {
        Ok(Arc::new(CompiledSeccomp { programs: vec![] }))
    }
}
