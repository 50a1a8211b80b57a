//! Optimiser groups as in the authors' code: backbone, head (keys, values, projections) and
//! attentive queries each with their own learning rate and weight decay, the loss's own
//! parameters (betas, proxies) with theirs, and a multi-step schedule over all of them.

use burn::module::{Module, ParamGroup};
use burn::optim::ModuleOptimizer;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};

use super::adam::FusedAdam;
use super::config::TrainConfig;
use crate::model::{Embedder, Head};

/// The parameter groups of an embedder that differ from the backbone's settings.
#[derive(Clone)]
pub struct ModelGroups {
    /// Every head parameter (the queries' group overrides it for the queries).
    pub head: ParamGroup,
    /// The attentive queries, for heads that have them.
    pub queries: Option<ParamGroup>,
}

impl ModelGroups {
    /// The groups of `model`.
    pub fn of(model: &Embedder) -> Self {
        let queries = match &model.head {
            Head::Attentive(h) => Some(ParamGroup::from_ids(vec![h.queries.id])),
            _ => None,
        };
        Self {
            head: ParamGroup::ids_from_module(model.head.clone()),
            queries,
        }
    }
}

/// Adam with the backbone's weight decay, and the head's and the queries' for their groups.
pub fn model_optimizer(train: &TrainConfig, groups: &ModelGroups) -> ModuleOptimizer {
    let mut optimizer = ModuleOptimizer::from(FusedAdam::new(train.weight_decay, train.adam_eps))
        .with_group(
            groups.head.clone(),
            FusedAdam::new(train.head_weight_decay(), train.adam_eps),
            None,
        );
    if let Some(queries) = &groups.queries {
        // The last matching group wins: the queries override the rest of the head.
        optimizer = optimizer.with_group(
            queries.clone(),
            FusedAdam::new(train.query_weight_decay(), train.adam_eps),
            None,
        );
    }
    optimizer
}

/// The learning rate of every model parameter in `epoch` (0-based).
pub fn model_learning_rates(
    train: &TrainConfig,
    groups: &ModelGroups,
    epoch: usize,
) -> ModuleLearningRate {
    let factor = train.lr_factor(epoch);
    let mut scheduler = ModuleLrScheduler::new(train.lr * factor)
        .with_group(groups.head.clone(), train.head_lr() * factor);
    if let Some(queries) = &groups.queries {
        scheduler = scheduler.with_group(queries.clone(), train.query_lr() * factor);
    }
    scheduler.step()
}

/// The number of parameters (scalars) in each group, for logs: (backbone, head, queries).
pub fn group_sizes(model: &Embedder) -> (usize, usize, usize) {
    let queries = match &model.head {
        Head::Attentive(h) => h.queries.num_params(),
        _ => 0,
    };
    (
        model.backbone.num_params(),
        model.head.num_params() - queries,
        queries,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GroupShape;
    use crate::model::embedder::EmbedderConfig;
    use crate::model::{BackboneKind, HeadKind};
    use burn::tensor::Device;

    struct Ids(Vec<burn::module::ParamId>);

    impl burn::module::ModuleVisitor for Ids {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            self.0.push(param.id);
        }
    }

    fn param_ids(module: &impl Module) -> Vec<burn::module::ParamId> {
        let mut ids = Ids(Vec::new());
        module.visit(&mut ids);
        ids.0
    }

    fn train_config() -> TrainConfig {
        TrainConfig {
            lr: 1.0,
            weight_decay: 0.0,
            head_lr: Some(2.0),
            query_lr: Some(3.0),
            lr_milestones: vec![1, 2],
            lr_gamma: 0.5,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn each_group_gets_its_learning_rate_and_the_schedule_decays_all() {
        let spec = EmbedderConfig {
            backbone: BackboneKind::ConvnetSmall,
            pretrained: None,
            freeze_batchnorm: None,
            transform_input: false,
            head: HeadKind::Attentive,
            in_channels: 1,
            groups: GroupShape::of(HeadKind::Attentive, 2, 8),
            reduction: 8,
            seed: 0,
        };
        let model = spec.init(&Device::default()).unwrap();
        let groups = ModelGroups::of(&model);
        let Head::Attentive(head) = &model.head else {
            unreachable!()
        };
        // Head parameters are not backbone parameters.
        let backbone = ParamGroup::ids_from_module(model.backbone.clone());
        assert!(!backbone.matches(&head.keys.weight.id, None));
        assert!(!backbone.matches(&head.queries.id, None));
        let backbone_ids = param_ids(&model.backbone);
        assert!(!backbone_ids.is_empty());
        let config = train_config();
        for (epoch, factor) in [(0, 1.0), (1, 0.5), (2, 0.25)] {
            let lrs = model_learning_rates(&config, &groups, epoch);
            assert_eq!(lrs.base(), 1.0 * factor);
            for id in &backbone_ids {
                assert_eq!(lrs.lr_from_param(*id, None), 1.0 * factor);
            }
            assert_eq!(lrs.lr_from_param(head.keys.weight.id, None), 2.0 * factor);
            assert_eq!(lrs.lr_from_param(head.queries.id, None), 3.0 * factor);
        }
        let (backbone, rest, queries) = group_sizes(&model);
        assert_eq!(queries, 2 * (64 / 8));
        assert!(backbone > rest && rest > 0);
    }

    #[test]
    fn lr_factor_follows_multistep() {
        let config = TrainConfig {
            lr_milestones: vec![2, 5],
            lr_gamma: 0.3,
            ..train_config()
        };
        let factors: Vec<f64> = (0..7).map(|e| config.lr_factor(e)).collect();
        assert_eq!(factors[..2], [1.0, 1.0]);
        assert!((factors[2] - 0.3).abs() < 1e-12 && (factors[4] - 0.3).abs() < 1e-12);
        assert!((factors[5] - 0.09).abs() < 1e-12 && (factors[6] - 0.09).abs() < 1e-12);
    }
}
